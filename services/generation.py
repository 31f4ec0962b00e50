"""Generation service: targeted synthetic images for a model's failure modes, registered as a
dataset (mitigation paper: "a photo of a {class} {background}").

The prompts come from the library's planner (:class:`failurelens.repair.prompts.PromptPlanner`:
failure backgrounds, failure captions, class only, random backgrounds, or explicit prompts),
with equal image budgets per class; a generator backend (:mod:`failurelens.generation`) draws
each image from its own seed; the images go to a staging prefix of the store and are registered
through the Registry service (which copies them into the dataset's own version), with the prompt,
seed and backend of every image in the manifest and in a prompts table.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from typing import Any

import grpc
import numpy as np
import pandas as pd

from failurelens import catalog as cat
from failurelens import errors
from failurelens.generation import Generator
from failurelens.repair.prompts import PlannedPrompt, PromptPlanner
from failurelens.runtime import Binding, JobContext, ServiceContext, main
from failurelens.runtime.peers import Peers
from failurelens.services import _params
from failurelens.store import open_store
from failurelens.store.base import ArtifactStore
from failurelens.v1 import common_pb2, generation_pb2_grpc, registry_pb2
from failurelens.v1 import generation_pb2 as gen

ESTIMATORS: dict[str, tuple[type, type]] = {"Generate": (gen.GenerateRequest, PromptPlanner)}
DEFAULT_SPLIT = "debug_train"


def default_generators(config: Any) -> dict[str, Generator]:
    """The world renderer, and every diffusers pipeline the config names (``name=path,...``)."""
    from failurelens.generation.diffusion import DiffusersGenerator
    from failurelens.generation.world import WorldGenerator
    from failurelens.world.config import load_config

    out: dict[str, Generator] = {"world": WorldGenerator(load_config(config.world_config or None))}
    for item in filter(None, (x.strip() for x in config.diffusers_pipelines.split(","))):
        name, _, path = item.partition("=")
        out[name] = DiffusersGenerator(name, path)
    return out


def image_seed(seed: int, text: str, index: int) -> int:
    """The seed of image ``index`` of a prompt: the same request draws the same images."""
    return int.from_bytes(hashlib.sha256(f"{seed}\x00{text}\x00{index}".encode()).digest()[:4], "little")


class GenerationServicer(generation_pb2_grpc.GenerationServicer):
    def __init__(self, ctx: ServiceContext, store: ArtifactStore | None = None, generators: dict[str, Generator] | None = None) -> None:
        self.ctx = ctx
        self.catalog = cat.Catalog(ctx.telemetry.watch_store(store or open_store(ctx.config.store or None)))
        self.generators = generators if generators is not None else default_generators(ctx.config)
        self.peers = Peers(ctx.config)

    async def ListGenerators(self, request: gen.ListGeneratorsRequest, context: grpc.aio.ServicerContext) -> gen.ListGeneratorsResponse:
        return gen.ListGeneratorsResponse(
            generators=[
                gen.GeneratorInfo(name=g.name, description=g.description, width=g.width, height=g.height, backend=g.backend)
                for g in self.generators.values()
            ]
        )

    # ------------------------------------------------------------------------------ prompts
    def _plan(self, request: gen.GenerateRequest, planner: PromptPlanner, class_names: list[str]) -> list[PlannedPrompt]:
        classes = list(request.classes) or None
        strategy = request.strategy
        if strategy == gen.PROMPT_STRATEGY_EXPLICIT:
            if not request.prompts:
                raise errors.InvalidArgument.about("prompts", "give the prompts (label, text, count) of an EXPLICIT request")
            out = []
            for i, p in enumerate(request.prompts):
                if not 0 <= p.label < len(class_names) or p.count < 1 or not p.text.strip():
                    raise errors.InvalidArgument.about(f"prompts[{i}]", f"needs a label in 0..{len(class_names) - 1}, a text and a count >= 1")
                out.append(PlannedPrompt(p.label, class_names[p.label], " ".join(p.text.split()), p.count, p.background))
            return out
        if strategy == gen.PROMPT_STRATEGY_FAILURE_BACKGROUNDS:
            if not request.assignment_uris:
                raise errors.InvalidArgument.about("assignment_uris", "give the assignments of AssignBackgrounds (one, or several pooled)")
            return planner.failure_backgrounds(class_names, self._background_counts(request), classes, by_frequency=request.by_frequency)
        if strategy == gen.PROMPT_STRATEGY_FAILURE_CAPTIONS:
            if not request.captions_uris:
                raise errors.InvalidArgument.about("captions_uris", "give the caption documents of CaptionRules and/or CaptionDirections")
            fallback = self._background_counts(request) if request.assignment_uris else None
            return planner.failure_captions(class_names, self._validated_captions(request), classes, fallback)
        if strategy == gen.PROMPT_STRATEGY_CLASS_ONLY:
            return planner.class_only(class_names, classes)
        if strategy == gen.PROMPT_STRATEGY_RANDOM_BACKGROUNDS:
            if not request.vocabulary_uri:
                raise errors.InvalidArgument.about("vocabulary_uri", "give a caption vocabulary whose background phrases are drawn from")
            vocab = self.catalog.read_json(request.vocabulary_uri, "vocabulary_uri")
            backgrounds = (vocab.get("attributes", {}) or {}).get("background") if isinstance(vocab, dict) else None
            if not backgrounds:
                raise errors.InvalidArgument.about("vocabulary_uri", 'the vocabulary needs "attributes": {"background": [phrases]}')
            return planner.random_backgrounds(class_names, backgrounds, classes)
        raise errors.InvalidArgument.about("strategy", "choose EXPLICIT, FAILURE_BACKGROUNDS, FAILURE_CAPTIONS, CLASS_ONLY or RANDOM_BACKGROUNDS")

    def _background_counts(self, request: gen.GenerateRequest) -> dict[int, list[tuple[str, int]]]:
        """Per class, (background, failures assigned to it) pooled over the assignment tables."""
        tables = []
        for i, uri in enumerate(request.assignment_uris):
            field = f"assignment_uris[{i}]"
            table = pd.read_parquet(io.BytesIO(self.catalog.read(uri, field, "give a BackgroundAssignment's assignments URI")))
            missing = {"class_index", "background"} - set(table.columns)
            if missing:
                raise errors.InvalidArgument.about(field, f"the table lacks column(s) {sorted(missing)}; give a BackgroundAssignment's assignments")
            tables.append(table[["class_index", "background"]])
        pooled = pd.concat(tables, ignore_index=True)
        return {int(c): [(str(b), int(n)) for b, n in g["background"].value_counts().items()] for c, g in pooled.groupby("class_index")}

    def _validated_captions(self, request: gen.GenerateRequest) -> dict[int, list[str]]:
        """Per class, the validated captions of its failure modes, in document order (rules of the
        label grouping, most important first; directions by mode)."""
        out: dict[int, list[str]] = {}
        for i, uri in enumerate(request.captions_uris):
            doc = self.catalog.read_json(uri, f"captions_uris[{i}]", "give a CaptionRules or CaptionDirections captions URI")
            if not isinstance(doc, list):
                raise errors.InvalidArgument.about(f"captions_uris[{i}]", "expected a caption document (a JSON list of rules or directions)")
            for item in doc:
                if item.get("grouping") == "prediction":  # its images are other classes' images
                    continue
                for c in item.get("captions", item.get("positive", [])):
                    if c.get("validated"):
                        out.setdefault(int(item["class_index"]), []).append(str(c["text"]))
        return out

    # ------------------------------------------------------------------------------ RPC
    async def Generate(self, request: gen.GenerateRequest, context: grpc.aio.ServicerContext):
        planner = _params.estimator(PromptPlanner, request)
        if request.generator not in self.generators:
            raise errors.InvalidArgument.about("generator", f"unknown generator {request.generator!r}; ListGenerators has {sorted(self.generators)}")
        generator = self.generators[request.generator]
        dataset = self.catalog.dataset(request.base_dataset_id, "base_dataset_id")
        name = cat.validate_id("dataset", request.output_dataset_name, "output_dataset_name")
        self.catalog.ensure_free("dataset", name, request.overwrite)
        split = request.split or DEFAULT_SPLIT
        prompts = self._plan(request, planner, list(dataset.class_names))
        if not prompts:
            raise errors.FailedPrecondition(
                "the strategy's input names no failure to generate images for (no class has failures or captions)",
                type="PROMPTS",
                subject=",".join([*request.assignment_uris, *request.captions_uris]) or name,
            )
        for p in prompts:
            generator.check_prompt(p.text)  # INVALID_ARGUMENT naming what the generator cannot draw, before any work

        def work(job: JobContext) -> gen.GenerateResult:
            return self._generate(request, generator, dataset, name, split, prompts, planner, job)

        async for update in self.ctx.jobs.stream(
            context,
            "Generate",
            work,
            lambda p: gen.GenerateUpdate(progress=p),
            lambda r: gen.GenerateUpdate(result=r),
            lambda r: r.dataset.dataset_id,
        ):
            yield update

    def _generate(
        self,
        request: gen.GenerateRequest,
        generator: Generator,
        dataset: registry_pb2.Dataset,
        name: str,
        split: str,
        prompts: list[PlannedPrompt],
        planner: PromptPlanner,
        job: JobContext,
    ) -> gen.GenerateResult:
        store = self.catalog.store
        seed = int(planner.validate_params()["seed"])
        total = sum(p.count for p in prompts)
        staging = f"uploads/generation-{name}-{uuid.uuid4().hex[:12]}/"
        rows: list[dict[str, Any]] = []
        try:
            for p in prompts:
                job.check()
                seeds = [image_seed(seed, p.text, i) for i in range(p.count)]
                for i, g in enumerate(generator.generate(p.text, seeds)):
                    rel = f"images/{p.class_name}/{len(rows):06d}.png"
                    buf = io.BytesIO()
                    g.image.save(buf, format="PNG")
                    store.put_bytes(staging + rel, buf.getvalue(), "image/png")
                    rows.append(
                        {
                            "uri": rel,
                            "label": p.class_name,
                            "split": split,
                            "prompt": p.text,
                            "source": p.source,
                            "seed": g.seed,
                            "prompt_index": i,
                            "generator": generator.name,
                            **{f"generated_{k}": str(v) for k, v in g.attributes.items() if k != "label"},
                        }
                    )
                    job.progress("generate", len(rows), total, p.text)
            frame = pd.DataFrame(rows)
            buf = io.BytesIO()
            frame.to_csv(buf, index=False)
            manifest = store.put_bytes(staging + "manifest.csv", buf.getvalue(), "text/csv")
            job.progress("register", 0, 1, f"dataset {name}", force=True)
            registry = self.peers.stub("registry")
            updates = registry.RegisterDataset(
                registry_pb2.RegisterDatasetRequest(
                    name=name,
                    manifest_uri=store.uri(manifest.key),
                    class_names=list(dataset.class_names),
                    overwrite=request.overwrite,
                    corrupt_image_policy=common_pb2.CORRUPT_IMAGE_POLICY_FAIL,
                ),
                timeout=job.timeout(3600.0),
            )
            registered = None
            for u in updates:
                if u.HasField("dataset"):
                    registered = u.dataset
            if registered is None:
                raise errors.Internal(f"the registry did not return dataset {name!r}")
            frame["row"] = np.arange(len(frame))
            frame["uri"] = self.catalog.load_manifest(registered)["uri"].to_numpy()
            prompts_ref = self.catalog.put_parquet(
                f"generated/{name}/{cat.derived_id('prompts', request, registered.manifest.uri)}.parquet",
                frame[["row", "label", "prompt", "source", "seed", "generator", "uri"]],
            )
        finally:
            store.delete_prefix(staging)
        job.progress("register", 1, 1, "done", force=True)
        self.ctx.telemetry.images.labels("generated", generator.name).inc(len(rows))
        return gen.GenerateResult(dataset=registered, prompts=prompts_ref, num_images=len(rows), generator=generator.name, strategy=request.strategy)


def build(ctx: ServiceContext) -> list[Binding]:
    return [Binding(GenerationServicer(ctx), generation_pb2_grpc.add_GenerationServicer_to_server, gen.DESCRIPTOR.services_by_name["Generation"])]


if __name__ == "__main__":
    main("generation", build)
