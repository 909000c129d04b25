"""Running index and search on a Ray cluster (opt-in with ``--ray``; the single-process engine is
the default). Ray is an optional extra (``pip install "r2cli[ray]"``) imported only here, only
when used. The cluster runs the same stage functions as the local pipeline
(``r2cli.features.stages``, ``r2cli.inference`` stages), so results are identical.
"""
