"""python -m eval.models inspect MODEL: what a GGUF file holds, from its header alone (nothing is loaded)."""

from eval.models import main

if __name__ == "__main__":
    raise SystemExit(main())
