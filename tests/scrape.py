"""Read a Prometheus text exposition the way Prometheus would."""

from prometheus_client.parser import text_string_to_metric_families


def samples(text):
    """{(sample name, frozenset of label items): value} for every sample in `text`."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(parsed, name, **labels):
    """One sample's value, 0 when it is absent (a counter not yet incremented)."""
    return parsed.get((name, frozenset(labels.items())), 0.0)
