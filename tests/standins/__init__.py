"""Stand-ins for the remote modeling code of LLaDA, Dream, SDAR, LLaDA2.0 and Fast-dLLM v2 (test fixtures).

Written for rcd's tests, not copied: tiny transformers that reproduce only the *calling
conventions* of the real remote code (forward signatures, mask formats, position ids,
cache handling, embedding locations, logit shift) so the presets' wiring is exercised
through `trust_remote_code` loading from disk. See `checkpoints.py`.
"""
