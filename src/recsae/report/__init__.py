"""Comparison tables, figures and neuron cards from the result files of a run (the report stage).

``recsae.stages.report.render`` (``recsae report --part PART``) builds one part:

* ``tables``: every table of ``recsae.paths.TABLES`` (+ the tidy ``sweep.csv``);
* ``sweep-figures``: fidelity vs sparsity and MS/coverage vs width and beta (from sweep.csv);
* ``interventions``: the intervention curves of one (dataset, model)'s chosen SAE;
* ``neuron-cards``: the neuron cards of one (dataset, model)'s chosen SAE;
* ``explorer``: the neuron explorer page of one (dataset, model), ``out_dir/{model}.html``;
* ``explorer-index``: the explorer's index page, ``out_dir/index.html``.

Paths: ``recsae.paths``; the settings: ``recsae.workflow.report_settings``.
"""
