"""One real instance per transfer syntax: pydicom's bundled test files, plus what they lack
made by real encoders (dcmtk's dcmcjpeg for JPEG Lossless, OpenJPH for HTJ2K)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import HTJ2K, HTJ2KLossless, HTJ2KLosslessRPCL, JPEGLossless

from tests.dicom_factory import make_instance, new_uid, write
from tests.tools import require_tool

# transfer syntax -> a bundled pydicom test file with pixel data and every required UID
BUNDLED = {
    "1.2.840.10008.1.2": "MR_small_implicit.dcm",
    "1.2.840.10008.1.2.1": "CT_small.dcm",
    "1.2.840.10008.1.2.1.99": "image_dfl.dcm",
    "1.2.840.10008.1.2.2": "ExplVR_BigEnd.dcm",
    "1.2.840.10008.1.2.4.50": "SC_jpeg_no_color_transform.dcm",
    "1.2.840.10008.1.2.4.51": "JPEG-lossy.dcm",
    "1.2.840.10008.1.2.4.70": "SC_rgb_jpeg_gdcm.dcm",
    "1.2.840.10008.1.2.4.80": "MR_small_jpeg_ls_lossless.dcm",
    "1.2.840.10008.1.2.4.90": "GDCMJ2K_TextGBR.dcm",
    "1.2.840.10008.1.2.4.91": "693_J2KI.dcm",
    "1.2.840.10008.1.2.5": "MR_small_RLE.dcm",
}
HTJ2K_SYNTAXES = (str(HTJ2KLossless), str(HTJ2KLosslessRPCL), str(HTJ2K))


def bundled(directory: Path) -> dict[str, Path]:
    """Copies of the bundled files, each with its own SOP Instance UID (pydicom's MR_small variants
    share one across transfer syntaxes, which a store would rightly treat as replacements)."""
    out, seen = {}, set()
    for ts, name in BUNDLED.items():
        source = get_testdata_file(name, download=False)
        assert source is not None, name
        ds = dcmread(source)
        if ds.SOPInstanceUID in seen:
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new_uid()
            out[ts] = write(ds, directory / f"{ts}.dcm")  # pixel data written back unchanged
        else:
            out[ts] = Path(shutil.copy(source, directory / f"{ts}.dcm"))
        seen.add(ds.SOPInstanceUID)
    # JPEG-LS near-lossless: the bundled file lacks Study/Series UIDs; add them, keep its pixel data
    ds = dcmread(get_testdata_file("JPEGLSNearLossless_16.dcm", download=False))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = new_uid(), new_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.PatientID = "PID-JLS"
    out["1.2.840.10008.1.2.4.81"] = write(ds, directory / "1.2.840.10008.1.2.4.81.dcm")
    return out


def jpeg_lossless_process14(directory: Path) -> Path:
    """JPEG Lossless, Non-Hierarchical (Process 14), selection value 6, encoded by dcmtk."""
    dcmcjpeg = require_tool("dcmcjpeg")
    source = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), directory / "p14-source.dcm")
    target = directory / f"{JPEGLossless}.dcm"
    subprocess.run([dcmcjpeg, "+el", "+sv", "6", str(source), str(target)], check=True, timeout=60)
    assert str(dcmread(target).file_meta.TransferSyntaxUID) == str(JPEGLossless)
    return target


def htj2k(directory: Path) -> dict[str, Path]:
    """HTJ2K lossless, lossless RPCL and lossy codestreams encoded by OpenJPH, encapsulated."""
    ojph = require_tool("ojph_compress", package="openjph-tools")
    rows = cols = 64
    pixels = (np.arange(rows * cols, dtype=np.uint16) * 7 % 4096).reshape(rows, cols)
    pgm = directory / "image.pgm"
    pgm.write_bytes(f"P5\n{cols} {rows}\n4095\n".encode() + pixels.astype(">u2").tobytes())
    out = {}
    for ts, options in zip(
        HTJ2K_SYNTAXES,
        (
            ["-reversible", "true", "-prog_order", "LRCP"],
            ["-reversible", "true", "-prog_order", "RPCL"],
            ["-qstep", "0.01"],
        ),
        strict=True,
    ):
        codestream = directory / f"{ts}.j2c"
        subprocess.run(
            [ojph, "-i", str(pgm), "-o", str(codestream), *options],
            check=True,
            timeout=60,
            capture_output=True,
        )
        ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=rows, columns=cols)
        ds.file_meta.TransferSyntaxUID = ts
        ds.PixelData = encapsulate([codestream.read_bytes()])
        ds["PixelData"].VR = "OB"
        if ts == str(HTJ2K):
            ds.LossyImageCompression = "01"
        out[ts] = write(ds, directory / f"{ts}.dcm")
    return out
