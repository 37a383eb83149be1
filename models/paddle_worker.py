"""PaddleOCR worker: runs in the interpreter that has paddleocr (often its own venv).

Standard library + paddleocr only: regionset is usually not installed where this runs. Protocol,
one JSON object per line: the worker writes ``{"ready": true, "version": ...}`` or ``{"fatal": ...}``
once, then for each request ``{"path": PNG}`` on stdin writes ``{"lines": [[quad, text, score], ...]}``
or ``{"error": ...}``. Everything PaddleOCR prints goes to stderr, so stdout carries only the protocol.
"""

import json
import os
import sys


def _out(stream, obj):
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


def _build(args):
    import paddleocr

    version = getattr(paddleocr, "__version__", "0")
    major = int(version.split(".")[0]) if version[:1].isdigit() else 2
    if major >= 3:
        kw = {"text_detection_model_dir": args["det_model_dir"],
              "text_recognition_model_dir": args["rec_model_dir"],
              "use_doc_orientation_classify": False, "use_doc_unwarping": False,
              "use_textline_orientation": bool(args["use_cls"])}
        if args.get("det_model_name"):
            kw["text_detection_model_name"] = args["det_model_name"]
        if args.get("rec_model_name"):
            kw["text_recognition_model_name"] = args["rec_model_name"]
        if args["use_cls"] and args.get("cls_model_dir"):
            kw["textline_orientation_model_dir"] = args["cls_model_dir"]
        engine = paddleocr.PaddleOCR(**kw)

        def run(path):
            lines = []
            for res in engine.predict(path):
                for quad, text, score in zip(res["rec_polys"], res["rec_texts"], res["rec_scores"]):
                    lines.append([[[float(x), float(y)] for x, y in quad], str(text), float(score)])
            return lines
    else:
        kw = {"det_model_dir": args["det_model_dir"], "rec_model_dir": args["rec_model_dir"],
              "use_angle_cls": bool(args["use_cls"]), "lang": args.get("lang") or "en", "show_log": False}
        if args["use_cls"] and args.get("cls_model_dir"):
            kw["cls_model_dir"] = args["cls_model_dir"]
        engine = paddleocr.PaddleOCR(**kw)

        def run(path):
            lines = []
            for page in engine.ocr(path, cls=bool(args["use_cls"])) or []:
                for quad, (text, score) in page or []:
                    lines.append([[[float(x), float(y)] for x, y in quad], str(text), float(score)])
            return lines
    return version, run


def main():
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # library prints go to stderr
    sys.stdout = sys.stderr
    args = json.loads(sys.argv[1])
    try:
        version, run = _build(args)
    except ImportError as e:
        _out(proto, {"fatal": f"paddleocr is not importable in {sys.executable} ({e}); install the 'paddle' "
                              "extra (paddleocr + paddlepaddle) in its own venv and set ocr.paddleocr.python"})
        return 2
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises
        _out(proto, {"fatal": f"PaddleOCR failed to start: {type(e).__name__}: {e}"})
        return 2
    _out(proto, {"ready": True, "version": version})
    for line in sys.stdin:
        try:
            _out(proto, {"lines": run(json.loads(line)["path"])})
        except Exception as e:  # noqa: BLE001
            _out(proto, {"error": f"{type(e).__name__}: {e}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
