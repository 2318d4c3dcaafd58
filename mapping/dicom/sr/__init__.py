"""DICOM Structured Reports and Encapsulated PDF, read for the results they carry: the content
tree (`content.py`), measurement reports (`tid1500.py`), dose reports (`dose.py`, units in
`units.py`), text reports (`text_report.py`), PDF (`pdf.py`) and which is which (`kind.py`)."""
