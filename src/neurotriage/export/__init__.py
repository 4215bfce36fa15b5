"""Pseudonymised export for research: BraTS-layout cases, a findings table and de-identified reports.

`run.export_pseudonymised` is the entry point. Patients and studies are named by keyed pseudonyms
(`pseudonyms.py`, with the key from `keys.py`), dates are shifted per patient, NIfTI headers are
scrubbed (`nifti.py`), and the whole export is scanned for the exported patients' identifiers
(`scan.py`) before it is moved into place.
"""
