"""The catalogue records: the authors' checkpoints, the packaged yaml, licence and provenance."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from vsep_bandit.catalog import model_records
from vsep_bandit.config import describes_bandit_v2, inference_settings, load_yaml, network_config

from vsep_core.catalog import resolve_model


def test_records_point_at_zenodo_and_the_packaged_yaml() -> None:
    records = model_records()
    assert [r.filename for r in records] == [f"checkpoint-{k}.ckpt" for k in
                                             ("multi", "eng", "deu", "fra", "spa", "cmn", "fao")]
    for record in records:
        checkpoint, config = record.files
        assert checkpoint.url.startswith("https://zenodo.org/records/12701995/files/" + record.filename)
        yaml_path = Path(url2pathname(urlparse(config.url).path))
        assert config.name == record.config == yaml_path.name and yaml_path.is_file()
        parsed = load_yaml(yaml_path)
        assert describes_bandit_v2(parsed)
        assert list(network_config(parsed).stems) == record.stems == ["speech", "music", "sfx"]
        assert inference_settings(parsed).sample_rate == 48000
        assert record.license == "CC BY-SA 4.0" and "Zenodo" in record.provenance
        for key, metrics in record.scores.items():
            stem, _, dataset = key.partition(" (")
            assert stem in record.stems and "DnR v3" in dataset and all(isinstance(v, float) for v in metrics.values())


def test_core_resolves_the_catalogue_name() -> None:
    record = resolve_model("checkpoint-multi.ckpt", "/nonexistent")
    assert record.architecture == "BandIt" and record.package == "vsep-bandit"


def test_core_gives_a_local_bandit_ckpt_to_this_plugin_alone(tmp_path) -> None:
    """A .ckpt with a BandIt v2 yaml beside it is BandIt's (vsep-mdxc does not claim it: no conflict)."""
    from bandit_testlib import write_model

    path = write_model(tmp_path, "checkpoint-multi_state_dict", seed=3)
    record = resolve_model(path.name, tmp_path)
    assert record.architecture == "BandIt" and record.config == "checkpoint-multi_state_dict.yaml"
