import json


def as_json(value):
    """One slice of the validated config, as the JSON string a `recsae` subcommand takes."""
    return json.dumps(value, sort_keys=True)


def job_gpus(wildcards=None):
    return config["gpus_per_job"]

