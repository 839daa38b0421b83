"""LaVPR's language side: text encoders with pooling, fusion, cross-modal alignment and LoRA
dual encoders. The ``lang-*`` commands are in :mod:`.cli`."""
