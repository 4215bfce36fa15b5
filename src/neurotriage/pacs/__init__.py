"""DICOM networking: receive studies from a PACS, send results back."""
