//! Docker-style random container names: `adjective_surname`.

use rand::seq::IndexedRandom;

const LEFT: &[&str] = &[
    "agile", "bold", "brave", "calm", "clever", "cool", "crisp", "eager", "fair", "fond", "gentle", "happy",
    "jolly", "keen", "kind", "lucid", "merry", "nifty", "proud", "quiet", "quick", "sharp", "steady",
    "sunny", "swift", "tender", "vivid", "wise", "witty", "zen",
];

const RIGHT: &[&str] = &[
    "babbage", "bell", "cerf", "curie", "dijkstra", "euler", "fermat", "gauss", "hamming", "hopper", "kahn",
    "knuth", "lamport", "lovelace", "maxwell", "noether", "pascal", "postel", "ritchie", "shannon", "tesla",
    "thompson", "torvalds", "turing", "wozniak",
];

/// A random name such as `swift_lovelace`.
pub fn random() -> String {
    let mut rng = rand::rng();
    format!(
        "{}_{}",
        LEFT.choose(&mut rng).copied().unwrap_or("berth"),
        RIGHT.choose(&mut rng).copied().unwrap_or("container")
    )
}
