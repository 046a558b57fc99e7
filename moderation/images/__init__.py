"""Copied-image detection: perceptual hashes, an on-disk Hamming-distance index and the copy policy.

Sellers re-use other sellers' product photos after re-encoding, resizing, cropping, mirroring, padding,
watermarking or framing them. ``hashing`` turns an image file into a small set of 64-bit perceptual
hashes that survive those edits, ``index`` finds stored hashes within a Hamming distance without scanning
every row, and ``matcher`` decides which near-duplicates are copies (not the same seller, not an
allow-listed brand) and turns them into findings. ``cli`` exposes ``moderation images index|match``.
"""
