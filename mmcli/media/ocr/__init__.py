"""Text in pictures: an OCR engine over the safe decoder (``reader``), and the folding that makes what it
read findable (``text``). The engine (RapidOCR: PP-OCR's detection, direction and recognition models as
ONNX, inside its wheel) is the optional extra ``ocr`` (``mmcli-clip[ocr]``), imported only when a picture is read."""
