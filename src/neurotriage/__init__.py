"""neurotriage: brain-tumour MRI triage. Research and decision support, not a medical device."""

__version__ = "0.1.0"

NOTICE = "Research and decision support only, not a medical device."
