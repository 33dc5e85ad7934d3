"""Read a Prometheus text exposition the way Prometheus would."""

from prometheus_client.parser import text_string_to_metric_families


def samples(text):
    """{(sample name, frozenset of label items): value} for every sample in `text`."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(parsed, name, **labels):
    """The sum of the samples of `name` that carry `labels` (whatever other
    labels they have, such as the survey); 0 when there are none (a counter
    not yet incremented)."""
    wanted = set(labels.items())
    return sum(v for (sample, have), v in parsed.items() if sample == name and wanted <= have)
