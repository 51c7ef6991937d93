//! sealstore cluster: nodes, slices and the embedding API (being built; see issue "cluster and CLI").
