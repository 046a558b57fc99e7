"""Text inside listing images: OCR (PP-OCRv4 on ONNX Runtime), a content-hash cache, and the rule packs.

See docs/ocr.md. ``OcrStage`` reads a listing's images and turns their text into findings on fields
``image:N`` carrying the ``box`` of the offending line.
"""
