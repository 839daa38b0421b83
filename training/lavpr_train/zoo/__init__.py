"""Published VPR models (CosPlace, EigenPlaces, MixVPR, BoQ, SALAD, MegaLoc) re-implemented
with their official parameter layouts, so their checkpoints export to ONNX for the runtime.
The commands are in :mod:`.cli`."""
