"""SeqNet sequence encoder: training (SeqMatchNet loss + mining), evaluation, ONNX export.
The ``seq-*`` commands are in :mod:`.cli`."""
