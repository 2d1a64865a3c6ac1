"""The three segmentation modes, named once for losses, metrics, data and inference."""

MULTICLASS = "multiclass"
BINARY = "binary"
MULTILABEL = "multilabel"
MODES = (MULTICLASS, BINARY, MULTILABEL)
