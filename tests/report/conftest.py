"""Fixtures: one report corpus and one hostile corpus per session (profiles are deterministic)."""

from __future__ import annotations

import warnings

import pytest

import celerylab as cl

from .corpus import make_corpus, make_evil


def _load(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cl.load(str(folder), cache=False, jobs=1)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    make_corpus(str(folder))
    return folder


@pytest.fixture(scope="session")
def corpus(corpus_dir):
    return _load(corpus_dir)


@pytest.fixture(scope="session")
def evil_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evil")
    make_evil(str(folder))
    return folder


@pytest.fixture(scope="session")
def evil(evil_dir):
    return _load(evil_dir)
