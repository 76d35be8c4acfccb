//! Integration tests of netdsl (trybuild ui cases, snapshots).
