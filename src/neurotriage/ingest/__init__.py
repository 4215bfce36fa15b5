"""Ingest: from a raw scanner study (DICOM or converter NIfTI) to a BraTS case."""
