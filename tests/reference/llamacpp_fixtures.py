"""Where the llama.cpp-written GGUF fixtures live (shared/fixtures/llamacpp, read its README).

$TINYSERVE_LLAMACPP_FIXTURES, else the first of ../shared and ../../shared next to the source
tree, else /work/shared. The tests fail (never skip) when none exists: the fixtures are part of
what CI checks.
"""
import os

SOURCE_DIR = os.environ.get("TINYSERVE_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD_DIR = os.environ.get("TINYSERVE_BUILD_DIR", os.path.join(SOURCE_DIR, "build/release"))


def fixtures_dir():
    candidates = [os.environ.get("TINYSERVE_LLAMACPP_FIXTURES", "")]
    candidates += [os.path.join(SOURCE_DIR, up, "shared/fixtures/llamacpp") for up in ("..", "../..")]
    candidates.append("/work/shared/fixtures/llamacpp")
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "tokenize.reference.json")):
            return os.path.abspath(c)
    raise FileNotFoundError("llama.cpp fixtures not found; set TINYSERVE_LLAMACPP_FIXTURES "
                            f"(looked in {candidates})")
