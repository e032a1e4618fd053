"""Where model files come from: URL helpers that plugins call to fill their records' sources.

UVR's model repository (public and VIP releases), its configs path, and audio-separator's
repository as the fallback are a *layout* several plugins share; core itself never decides
where a plugin's files come from (a file without a source cannot be downloaded).

Mirrors and tests redirect downloads with environment variables, read when a URL is used:

============================== =====================================================
VSEP_UVR_PUBLIC_REPO_URL       replaces ``UVR_PUBLIC_REPO_URL`` (public UVR models, yamls)
VSEP_UVR_VIP_REPO_URL          replaces ``UVR_VIP_REPO_URL`` (VIP models)
VSEP_AUDIO_SEPARATOR_REPO_URL  replaces ``AUDIO_SEPARATOR_REPO_URL`` (the fallback repository)
VSEP_UVR_MODEL_DATA_URL_PREFIX replaces ``UVR_MODEL_DATA_URL_PREFIX`` (UVR hash tables)
VSEP_DEMUCS_REPO_URL           replaces ``DEMUCS_REPO_URL`` (Demucs ``.th`` weights)
============================== =====================================================
"""

from __future__ import annotations

import os
from pathlib import Path

from vsep_core.api import DownloadFile

# The reference's values.
UVR_PUBLIC_REPO_URL = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models"
UVR_VIP_REPO_URL = "https://github.com/Anjok0109/ai_magic/releases/download/v5"
AUDIO_SEPARATOR_REPO_URL = "https://github.com/nomadkaraoke/python-audio-separator/releases/download/model-configs"
UVR_MODEL_DATA_URL_PREFIX = "https://raw.githubusercontent.com/TRvlvr/application_data/main"
UVR_CONFIGS_PATH = "mdx_model_data/mdx_c_configs"
DEMUCS_REPO_URL = "https://dl.fbaipublicfiles.com/demucs"

_BASES = {
    "VSEP_UVR_PUBLIC_REPO_URL": UVR_PUBLIC_REPO_URL,
    "VSEP_UVR_VIP_REPO_URL": UVR_VIP_REPO_URL,
    "VSEP_AUDIO_SEPARATOR_REPO_URL": AUDIO_SEPARATOR_REPO_URL,
    "VSEP_UVR_MODEL_DATA_URL_PREFIX": UVR_MODEL_DATA_URL_PREFIX,
    "VSEP_DEMUCS_REPO_URL": DEMUCS_REPO_URL,
}


def _base(env: str) -> str:
    value = os.environ.get(env, "").strip()
    return (value or _BASES[env]).rstrip("/")


def rewrite_url(url: str) -> str:
    """Point an absolute URL under one of the default bases at the mirror the environment names."""
    for env, default in _BASES.items():
        if url.startswith(default + "/"):
            return _base(env) + url[len(default):]
    return url


def get_repo_url(is_vip: bool = False) -> str:
    """UVR's model repository, VIP or public (environment overrides applied)."""
    return _base("VSEP_UVR_VIP_REPO_URL" if is_vip else "VSEP_UVR_PUBLIC_REPO_URL")


def get_fallback_url(filename: str) -> str:
    """URL of a file in audio-separator's repository, the reference's fallback."""
    return f"{_base('VSEP_AUDIO_SEPARATOR_REPO_URL')}/{filename}"


def get_uvr_config_url(filename: str) -> str:
    """URL of a yaml config under UVR's configs path (the reference's first try for configs)."""
    return f"{_base('VSEP_UVR_PUBLIC_REPO_URL')}/{UVR_CONFIGS_PATH}/{filename}"


def get_uvr_model_data_url(kind: str) -> str:
    """URL of UVR's hash table ``<kind>_model_data/model_data_new.json`` (environment overrides applied)."""
    return f"{_base('VSEP_UVR_MODEL_DATA_URL_PREFIX')}/{kind}_model_data/model_data_new.json"


def uvr_model_file(name: str, vip: bool = False, size: int | None = None,
                   sha256: str | None = None) -> DownloadFile:
    """A model file of UVR's repository (public or VIP), with audio-separator's repository as fallback."""
    base = "VSEP_UVR_VIP_REPO_URL" if vip else "VSEP_UVR_PUBLIC_REPO_URL"
    return DownloadFile(name, url=f"{_BASES[base]}/{name}", size=size, sha256=sha256,
                        mirrors=(f"{AUDIO_SEPARATOR_REPO_URL}/{name}",), listed_by_name=True)


def uvr_config_file(name: str, packaged: Path | None = None) -> DownloadFile:
    """A yaml config: UVR's configs path, then audio-separator's repository, then the packaged copy."""
    mirrors = (f"{AUDIO_SEPARATOR_REPO_URL}/{name}",) + ((packaged.as_uri(),) if packaged else ())
    return DownloadFile(name, url=f"{UVR_PUBLIC_REPO_URL}/{UVR_CONFIGS_PATH}/{name}", mirrors=mirrors,
                        listed_by_name=True)


def with_fallback(name: str, url: str) -> DownloadFile:
    """A file at `url`, with audio-separator's repository as fallback (as the reference tries it)."""
    fallback = f"{AUDIO_SEPARATOR_REPO_URL}/{name}"
    return DownloadFile(name, url=url, mirrors=() if url == fallback else (fallback,))
