"""Where `ingest` puts things in a case folder: everything but the four sequences goes in CASE_DIR/ingest/."""

INGEST_FOLDER = "ingest"
RECORD_NAME = "ingest.json"
NATIVE_T1CE = "t1ce_native.nii.gz"
T1CE_DICOM = "t1ce_dicom"
BRAIN_MASK = "brain_mask.nii.gz"
QC_FIGURE = "qc.png"
TEMPLATE_TRANSFORM = "brats_to_t1ce.tfm"
