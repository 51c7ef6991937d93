//! sealstore storage for one slice: fixed-size sealed columnar blocks (being built; see issue "blockstore").
