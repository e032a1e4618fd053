"""The catalogue record: the authors' LQ-MP3 weights, the packaged yaml, licence and provenance."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from vsep_apollo.catalog import model_records
from vsep_apollo.config import describes_apollo, load_yaml, network_config, output_name

from vsep_core.catalog import resolve_model


def test_record_points_at_the_authors_weights_and_the_packaged_yaml() -> None:
    (record,) = model_records()
    weights, config = record.files
    assert weights.url == "https://huggingface.co/JusperLee/Apollo/resolve/main/pytorch_model.bin"
    assert weights.name == record.filename == "apollo_lq_mp3.bin" and len(weights.sha256) == 64
    yaml_path = Path(url2pathname(urlparse(config.url).path))
    assert config.name == record.config == yaml_path.name and yaml_path.is_file()
    parsed = load_yaml(yaml_path)
    assert describes_apollo(parsed)
    assert network_config(parsed).feature_dim == 256
    assert record.stems == [output_name(parsed)] == ["Restored"]
    assert record.license and record.provenance


def test_core_resolves_the_catalogue_name() -> None:
    assert resolve_model("apollo_lq_mp3.bin", "/nonexistent").architecture == "Apollo"


def test_core_gives_a_local_apollo_ckpt_to_this_plugin_alone(tmp_path) -> None:
    """MSST names Apollo checkpoints .ckpt too; with the yaml beside it no other plugin claims it."""
    from apollo_testlib import write_model

    path = write_model(tmp_path, "apollo_model", seed=3)
    record = resolve_model(path.name, tmp_path)
    assert record.architecture == "Apollo" and record.config == "apollo_model.yaml"
