"""Our CustomResourceDefinitions, generated from the pydantic models (``controlplane crds`` writes them).

One source of truth: the limits a folder of files is checked against (pydantic) are the limits the API
server checks (the CRDs' structural schemas), because the second is generated from the first.
``schema`` turns a model into a structural schema, ``definitions`` builds the CRDs, ``render`` writes them.
"""
