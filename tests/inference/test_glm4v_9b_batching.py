"""GLM-4V-9B in the batching engine, on the reference checkpoint (fp32, CPU): rows join and leave three slots,
and every row answers what the original model and one-at-a-time `generate()` answer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest
import torch
from PIL import Image

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from shared.settings import Settings
from tests.support.glm4v_9b_reference import CASES, case, case_inputs, reference_dir
from worker.inference import load_engine
from worker.inference.batched import BatchedEngine
from worker.inference.batching.fused_ops import FusedOps
from worker.inference.batching.kernels import CACHE_TOKENS, KernelContext
from worker.inference.batching.kv_slots import KVSlots
from worker.inference.batching.rows import Ticket
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import GenerationParams, InferenceError, InferenceRequest
from worker.inference.families.glm4v_9b.batch import BATCH_SUPPORT
from worker.inference.families.glm4v_9b.config import Glm4v9bConfig
from worker.inference.families.glm4v_9b.model import Glm4v9bForConditionalGeneration

GOLDEN_GREEDY = GenerationParams(max_new_tokens=24, temperature=0.0, top_p=1.0, repetition_penalty=1.0)
TEACHER_TOLERANCE = 1e-4
COLOR_SCHEMA = {
    "type": "object",
    "properties": {"color": {"type": "string", "minLength": 1, "maxLength": 6}},
    "required": ["color"],
    "additionalProperties": False,
}


def params(tokens: int, penalty: float = 1.0) -> GenerationParams:
    return GenerationParams(max_new_tokens=tokens, temperature=0.0, top_p=1.0, repetition_penalty=penalty)


def settings(tmp_path_factory: pytest.TempPathFactory, **overrides) -> Settings:
    chosen = {"quantization": "fp32", "device": "cpu", **overrides}
    return Settings(model=str(reference_dir()), data_dir=tmp_path_factory.mktemp("data"), **chosen)


@pytest.fixture(scope="module")
def batched(tmp_path_factory: pytest.TempPathFactory) -> BatchedEngine:
    """Three slots for seven requests: rows join as others leave."""
    engine = load_engine(settings(tmp_path_factory, gpu_max_batch=3))
    assert isinstance(engine, BatchedEngine) and engine.max_batch == 3  # `auto` batches this family
    return engine


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> HFEngine:
    engine = load_engine(settings(tmp_path_factory, gpu_engine="sequential"))
    assert isinstance(engine, HFEngine)
    return engine


def photo(name: str, size: tuple[int, int] | None = None) -> Image.Image:
    image = Image.open(reference_dir() / f"images/{name}.png").convert("RGB")
    return image.resize(size) if size else image


def test_every_golden_case_answers_the_originals_greedy_continuation(batched: BatchedEngine) -> None:
    """All seven cases at once (text-only ones too): their 24 tokens are the original model's."""
    runner = batched.scheduler.runner
    tickets = [Ticket(runner.stage(case_inputs(case(name))), GOLDEN_GREEDY) for name in CASES]
    for ticket in tickets:
        batched.scheduler.submit(ticket)
    answers = [ticket.wait(120) for ticket in tickets]
    assert [answer.token_ids for answer in answers] == [case(name)["greedy"]["new_token_ids"] for name in CASES]
    # Cache positions count the image's features, prompt tokens (as usage reports them) its ids.
    assert [ticket.cache_tokens for ticket in tickets] == [case(name)["sequence_length"] for name in CASES]
    assert [answer.prompt_tokens for answer in answers] == [len(case(name)["input_ids"]) for name in CASES]


def test_a_batch_answers_what_generate_answers_one_at_a_time(batched: BatchedEngine, sequential: HFEngine) -> None:
    requests = [
        InferenceRequest("describe", photo("shapes"), params(12)),
        InferenceRequest("ocr", photo("text", (64, 200)), params(30, penalty=1.3)),
        InferenceRequest("ask", photo("gradient"), params(7), prompt="Which corner is the brightest?"),
        InferenceRequest("copy", photo("shapes", (300, 90)), params(25, penalty=1.1), options={"channel": "title"}),
        InferenceRequest("describe", photo("gradient", (40, 40)), params(18)),
        InferenceRequest("attributes", photo("text"), params(40), options={"schema": COLOR_SCHEMA}),
        InferenceRequest("describe", photo("text"), params(3)),
    ]
    steps_before = batched.scheduler.stats.steps
    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(batched.run, requests))
    steps = batched.scheduler.stats.steps - steps_before
    alone = [sequential.run(request) for request in requests]
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.data for r in together] == [r.data for r in alone]
    assert [r.usage["prompt_tokens"] for r in together] == [r.usage["prompt_tokens"] for r in alone]
    assert [r.usage for r in together[:5]] == [r.usage for r in alone[:5]]  # the JSON row stops at its constraint
    assert steps < sum(r.usage["completion_tokens"] for r in together) * 2 // 3  # decode steps were shared


def test_attributes_are_schema_valid_json(batched: BatchedEngine) -> None:
    request = InferenceRequest("attributes", photo("shapes"), params(512))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(batched.run, [request, request]))
    for result in results:
        jsonschema.validate(result.data, DEFAULT_PRODUCT_SCHEMA)
    assert results[0].data == results[1].data


def test_the_sequence_limit_counts_the_images_features(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A prompt of 14 ids fills 29 cache positions: 240 new tokens fit beside its ids, not beside its features."""
    engine = load_engine(settings(tmp_path_factory, gpu_max_batch=1, gpu_max_seq_tokens=256))
    inputs = case_inputs(case("describe"))
    staged = engine.scheduler.runner.stage(inputs)
    assert staged[CACHE_TOKENS] == 29 and staged["input_ids"].shape[1] == 14
    with pytest.raises(InferenceError) as oversized:
        engine.scheduler.submit(Ticket(staged, params(240))).wait(60)
    assert oversized.value.code == "input_too_long" and "29 tokens" in oversized.value.message
    engine.scheduler.close()


def test_prefill_and_decode_give_the_forwards_logits_at_every_position(batched: BatchedEngine) -> None:
    """Teacher-forced on the golden continuations, three prompts in three slots at once."""
    names = ("describe", "history", "text_only")
    runner, model = batched.scheduler.runner, batched.base.model
    taken = [runner.slots.acquire() for _ in names]
    assert taken == [0, 1, 2]  # the loop is idle: slot i is row i of a step
    try:
        with torch.inference_mode():
            prefilled = runner.kernels.prefill([runner.stage(case_inputs(case(name))) for name in names], taken)
            produced = [torch.stack([done.logits for done in prefilled])]
            lengths = [done.cached for done in prefilled]
            positions = [done.next_position for done in prefilled]
            teacher = torch.tensor([case(name)["greedy"]["new_token_ids"] for name in names])
            for t in range(teacher.shape[1] - 1):
                produced.append(runner.steps(teacher[:, t].tolist(), positions, lengths, max(lengths) + 1))
                lengths = [length + 1 for length in lengths]
                positions = [position + 1 for position in positions]
            for row, name in enumerate(names):
                inputs = case_inputs(case(name))
                ids = torch.cat([inputs["input_ids"], teacher[row : row + 1, :-1]], dim=1)
                forward = model(ids, pixel_values=inputs.get("pixel_values"), use_cache=False).logits[0]
                expected = forward[prefilled[row].cached - 1 :]
                got = torch.stack([logits[row] for logits in produced])
                assert (got - expected).abs().max() < TEACHER_TOLERANCE, name
    finally:
        for slot in taken:
            runner.slots.release(slot)


def test_bf16_answers_what_bf16_generate_answers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The real checkpoint's dtype: ChatGLM's norms, the rotary table and the splice round as the model's do."""
    engine = load_engine(settings(tmp_path_factory, quantization="bf16", gpu_max_batch=2))
    alone = load_engine(settings(tmp_path_factory, quantization="bf16", gpu_engine="sequential"))
    requests = [
        InferenceRequest(task, photo(name), GOLDEN_GREEDY)
        for task, name in (("describe", "shapes"), ("ocr", "text"), ("describe", "gradient"))
    ]
    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(engine.run, requests))
    assert [r.text for r in together] == [alone.run(r).text for r in requests]
    engine.scheduler.close()


def test_a_prompt_without_its_image_mark_fails_alone(batched: BatchedEngine) -> None:
    """Pixels with a text-only prompt cannot be spliced: that request fails, the one prefilled beside it answers."""
    runner = batched.scheduler.runner
    broken = {**case_inputs(case("text_only")), "pixel_values": case_inputs(case("describe"))["pixel_values"]}
    bad = Ticket(runner.stage(broken), GOLDEN_GREEDY)
    good = Ticket(runner.stage(case_inputs(case("describe"))), GOLDEN_GREEDY)
    for ticket in (bad, good):
        batched.scheduler.submit(ticket)
    with pytest.raises(InferenceError) as unreadable:
        bad.wait(60)
    assert unreadable.value.code == "inference_error" and "boi" in unreadable.value.message
    assert good.wait(60).token_ids == case("describe")["greedy"]["new_token_ids"]


def test_the_decode_step_reads_no_value_back_to_the_host() -> None:
    """On the meta device (shapes, no data) any `.item()`, `.tolist()` or branch on a value raises: the step
    CUDA graphs capture must not have one."""
    config = Glm4v9bConfig.from_pretrained(reference_dir())
    with torch.device("meta"):
        model = Glm4v9bForConditionalGeneration(config)
    layout = BATCH_SUPPORT.kv_layout(model)
    slots = KVSlots(layout.layers, 4, layout.kv_heads, layout.head_dim, 64, torch.float32, "meta")
    kernels = BATCH_SUPPORT.kernels(model, slots, KernelContext(torch.float32, FusedOps.for_device("meta")))
    state = torch.zeros(4, dtype=torch.long, device="meta")
    assert kernels.decode(state, state, state, 3, 32).shape == (3, config.padded_vocab_size)
