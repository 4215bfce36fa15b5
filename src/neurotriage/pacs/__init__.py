"""The DICOM node: receiving studies from a PACS or a scanner, and sending results back."""
