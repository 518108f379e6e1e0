"""vidret-milvus: near-duplicate / copied-video retrieval on Milvus.

Data flows one way: video (``video``) -> descriptor (``model``, ``fingerprint``,
``descriptor``) -> store (``store``) -> results (``search``, ``align``).
"""

__version__ = "0.1.0"
