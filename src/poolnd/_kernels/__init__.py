"""numba loops over the canonical layout ``(B, D, H, W, C)``.

Three pooled axes sit between one batch axis ``B`` (planes, walked in
parallel) and one inner batch axis ``C`` (channels-last data stays in place).
Fewer pooled axes arrive as unit axes; the callers in ``functional`` do all
reshaping and checking, so kernels trust their arguments.
"""
