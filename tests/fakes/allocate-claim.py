#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Play the scheduler for a claim from a manifest: read the ResourceClaim (or the claim a
ResourceClaimTemplate makes) from FILE and print it, as JSON, allocated on DEVICE of
NODE's pool: a result per request with a shareID and consumedCapacity equal to the
request's capacity.requests. For the fake API server's control port (POST /claims).

Usage: allocate-claim.py FILE NODE DEVICE [--claim NAME] [--uid UID] [--namespace NS]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from fakeapi import allocate_claim, manifest_claims  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("node")
    ap.add_argument("device")
    ap.add_argument("--claim", help="which claim of the file (default: the only one)")
    ap.add_argument("--uid", help="the claim's UID (default: a new one)")
    ap.add_argument("--namespace", default="default", help="for a claim that names none (default: default)")
    a = ap.parse_args()

    claims = manifest_claims(a.file)
    if a.claim:
        claims = [c for c in claims if c["metadata"]["name"] == a.claim]
    if len(claims) != 1:
        names = [c["metadata"]["name"] for c in manifest_claims(a.file)]
        sys.exit("allocate-claim: %s has claims %s; name one with --claim" % (a.file, names) if names
                 else "allocate-claim: no ResourceClaim or ResourceClaimTemplate in %s" % a.file)
    try:
        obj = allocate_claim(claims[0], a.node, a.device, uid=a.uid, namespace=a.namespace)
    except ValueError as e:
        sys.exit("allocate-claim: %s" % e)
    json.dump(obj, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
