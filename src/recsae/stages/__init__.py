"""The workflow's stages: one function per Snakemake rule, each called by one ``recsae``
subcommand (``recsae.cli``) with the rule's validated config slice (``settings``) and keyword
arguments named as the subcommand's flags (paths, ``seed``, ``device``).

===================  ============================  =====================================
stage                function                      writes
===================  ============================  =====================================
fetch                ``data.fetch``                resources/raw/{dataset}/
prepare              ``data.prepare``              results/{dataset}/data/
split                ``data.split``                results/{dataset}/split/
train recommender    ``recommender.train``         results/{dataset}/{model}/model.pt, ...
evaluate recommender ``recommender.evaluate``      results/{dataset}/{model}/metrics.json
train SAE            ``sae.train``                 .../sae/{point}/sae.pt, train_log.json
evaluate SAE         ``sae_evaluation.evaluate``   .../sae/{point}/metrics.json, ...
aggregate, render    ``report.render``             results/tables, figures, explorer
===================  ============================  =====================================

Paths: ``recsae.paths``. Below the stages, ``recsae.data``, ``recsae.recommenders``,
``recsae.sae``, ``recsae.methods``, ``recsae.metrics`` and ``recsae.interventions`` hold the
computations; the stages read and write files and call them.
"""
