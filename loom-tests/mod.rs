//! Loom models of weft's protocols. See `README.md` beside this file.

mod exactly_once;
