"""What a set of NetworkPolicies lets through, as the API documents it
(networking.k8s.io/v1), for the tests to ask of pods real and imagined:
a connection passes if the source's egress and the destination's ingress
both allow it. A pod that no policy of a direction selects is open in that
direction; once one selects it, only what some rule of that direction
matches passes. Only pods in the policies' namespace are governed here:
the other end, elsewhere, is the cluster operator's."""

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str | None  # None: an address outside the cluster
    labels: dict = field(default_factory=dict)
    # {name or None: (number, protocol)} of its containers' ports.
    ports: tuple = ()
    ip: str = "10.0.0.1"

    @property
    def is_pod(self):
        return self.namespace is not None


def selects(selector, labels):
    """A label selector: an empty one selects everything."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in {"In", "NotIn", "Exists", "DoesNotExist"}:
            raise ValueError(f"unknown operator {operator}")
    return True


def namespace_labels(namespace):
    # Set by the API server on every namespace since Kubernetes 1.22.
    return {"kubernetes.io/metadata.name": namespace}


def peer_matches(peer, endpoint, policy_namespace):
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(endpoint.ip)
        return (address in ipaddress.ip_network(block["cidr"])
                and not any(address in ipaddress.ip_network(e) for e in block.get("except", [])))
    if not endpoint.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels(endpoint.namespace)):
            return False
    elif endpoint.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), endpoint.labels)


def port_matches(entry, destination, port, protocol):
    if entry.get("protocol", "TCP") != protocol:
        return False
    if "port" not in entry:
        return True
    wanted = entry["port"]
    if isinstance(wanted, str):
        # A named port is the destination pod's container port of that name.
        named = dict(destination.ports).get(wanted)
        return named == (port, protocol)
    return wanted <= port <= entry.get("endPort", wanted)


def rule_matches(rule, peers_key, peer, destination, port, protocol, policy_namespace):
    peers = rule.get(peers_key) or []
    if peers and not any(peer_matches(p, peer, policy_namespace) for p in peers):
        return False
    entries = rule.get("ports") or []
    return not entries or any(port_matches(e, destination, port, protocol) for e in entries)


def policy_types(policy):
    spec = policy["spec"]
    return set(spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else [])))


def _side_allows(policies, pod, direction, peer, destination, port, protocol):
    key, rules_key, peers_key = direction, direction.lower(), "to" if direction == "Egress" else "from"
    governing = [p for p in policies if p["metadata"]["namespace"] == pod.namespace
                 and key in policy_types(p) and selects(p["spec"]["podSelector"], pod.labels)]
    if not governing:
        return True
    return any(rule_matches(rule, peers_key, peer, destination, port, protocol, p["metadata"]["namespace"])
               for p in governing for rule in p["spec"].get(rules_key, []))


def allowed(policies, source, destination, port, protocol="TCP"):
    namespaces = {p["metadata"]["namespace"] for p in policies}
    egress = (source.namespace not in namespaces
              or _side_allows(policies, source, "Egress", destination, destination, port, protocol))
    ingress = (destination.namespace not in namespaces
               or _side_allows(policies, destination, "Ingress", source, destination, port, protocol))
    return egress and ingress
