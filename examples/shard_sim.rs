//! Shard simulator (benchmark (b) of the rate limiter): with the real hash, naming, split and isolate-side planning
//! code, how does a Zipf-distributed load spread over N shard objects, and what does the hot-key split actually
//! admit? Host-only; `cargo run --release --example shard_sim`. Deterministic (fixed seeds), well under a minute.
//!
//! Part 1, load: 850,000 req/s over 1,000,000 keys with Zipf exponent s = 1.1 (expected rates, computed exactly
//! rather than sampled), over N = 1…256 objects, without and with hot-key splitting (a key hotter than the target
//! per-part rate is split into ⌈rate / target⌉ parts, each taking an equal share of its traffic, as the isolate's
//! round-robin does). Prints the busiest object's share and rate, and the smallest N keeping every object under
//! Cloudflare's documented soft limit of 1,000 req/s per object.
//!
//! Part 2, split bound: limit L split over S parts, requests from I isolates (each with its own rotation, randomly
//! interleaved, all inside one window), through `plan::plan` and the object's `limiter::take`. Measures the
//! over-admission (admitted − L) and the quota left unused at the first refusal, against the documented bound
//! (S − 1)·I.

use std::collections::HashMap;

use durable_objects::ratelimit::limiter::{self, MemoryStore};
use durable_objects::ratelimit::shard::{fnv1a64, shard_of, target};
use edgekit::ratelimit::memory::IsolateMemory;
use edgekit::ratelimit::plan::{self, Plan};
use edgekit::ratelimit::policy::{FailureMode, KeySource, Policy};

const TOTAL_RPS: f64 = 850_000.0;
const KEYS: usize = 1_000_000;
const ZIPF_S: f64 = 1.1;
const SOFT_LIMIT: f64 = 1_000.0;

/// One unit of load: a state key's hash (the real FNV-1a of the real state key name) and its rate.
struct Item {
    hash: u64,
    rps: f64,
}

/// Every key (split or not) as items sorted by rate, busiest first. `part_target` = None: no splitting.
fn items(keys: &[String], rates: &[f64], part_target: Option<f64>) -> Vec<Item> {
    let mut items = Vec::with_capacity(keys.len());
    for (key, &rps) in keys.iter().zip(rates) {
        let parts = match part_target {
            Some(t) if rps > t => (rps / t).ceil() as u32,
            _ => 1,
        };
        for part in 0..parts {
            // The real routing: target() names the state key (sub-key for a split) whose hash picks the shard.
            let state_key = target(key, u32::MAX, 1, parts, part).state_key;
            items.push(Item {
                hash: fnv1a64(state_key.as_bytes()),
                rps: rps / f64::from(parts),
            });
        }
    }
    items.sort_by(|a, b| b.rps.total_cmp(&a.rps));
    items
}

/// The busiest object's rate over `n` objects; stops early (returning ≥ `stop_at`) once any object reaches it.
fn busiest(items: &[Item], n: u64, stop_at: f64, loads: &mut Vec<f64>) -> f64 {
    loads.clear();
    loads.resize(n as usize, 0.0);
    let mut max = 0.0f64;
    for item in items {
        let slot = &mut loads[(item.hash % n) as usize];
        *slot += item.rps;
        if *slot > max {
            max = *slot;
            if max >= stop_at {
                return max;
            }
        }
    }
    max
}

fn load_part() {
    let harmonic: f64 = (1..=KEYS).map(|k| (k as f64).powf(-ZIPF_S)).sum();
    let rates: Vec<f64> = (1..=KEYS)
        .map(|k| TOTAL_RPS * (k as f64).powf(-ZIPF_S) / harmonic)
        .collect();
    let keys: Vec<String> = (0..KEYS).map(|k| format!("user:{k}")).collect();
    // The simulator's shard formula must be the Worker's: check it against shard_of on a sample.
    for key in keys.iter().step_by(9_973) {
        for n in [1, 7, 16, 255] {
            assert_eq!(
                (fnv1a64(key.as_bytes()) % n) as u32,
                shard_of(key, n as u32),
                "{key} over {n}"
            );
        }
    }
    println!("Part 1: {TOTAL_RPS} req/s, Zipf s={ZIPF_S} over {KEYS} keys; hottest key {:.0} req/s ({:.2}%)",
        rates[0], 100.0 * rates[0] / TOTAL_RPS);
    let variants: Vec<(String, Vec<Item>)> = vec![
        ("no split".into(), items(&keys, &rates, None)),
        ("split > 500/s".into(), items(&keys, &rates, Some(500.0))),
        ("split > 250/s".into(), items(&keys, &rates, Some(250.0))),
        ("split > 100/s".into(), items(&keys, &rates, Some(100.0))),
    ];
    let mut loads = Vec::new();
    print!("\n| N |");
    for (name, _) in &variants {
        print!(" {name}: busiest share, req/s |");
    }
    println!("\n|---:|{}", "---:|".repeat(variants.len()));
    for n in [1u64, 2, 4, 8, 16, 32, 64, 128, 256] {
        print!("| {n} |");
        for (_, its) in &variants {
            let max = busiest(its, n, f64::INFINITY, &mut loads);
            print!(" {:.2}%, {:.0} |", 100.0 * max / TOTAL_RPS, max);
        }
        println!();
    }
    println!(
        "\nSmallest N keeping every object under {SOFT_LIMIT} req/s (every N from 1 checked):"
    );
    for (name, its) in &variants {
        let within_256 =
            (1..=256u64).find(|&n| busiest(its, n, SOFT_LIMIT, &mut loads) < SOFT_LIMIT);
        let hottest = its.first().map_or(0.0, |i| i.rps);
        let beyond = if hottest >= SOFT_LIMIT {
            format!("none at any N: its hottest unit alone is {hottest:.0} req/s")
        } else {
            match (1..=65_536u64).find(|&n| busiest(its, n, SOFT_LIMIT, &mut loads) < SOFT_LIMIT) {
                Some(n) => format!(
                    "smallest N overall: {n} (hottest unit {hottest:.0} req/s, {} units)",
                    its.len()
                ),
                None => "none up to 65,536".into(),
            }
        };
        match within_256 {
            Some(n) => println!("- {name}: N = {n}; {beyond}"),
            None => println!(
                "- {name}: none in 1..256 (N ≥ {} by total load alone); {beyond}",
                (TOTAL_RPS / SOFT_LIMIT).floor() as u64 + 1
            ),
        }
    }
}

/// xorshift64*: a fixed-seed generator for the interleaving (the simulation must be reproducible).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn split_part() {
    println!("\nPart 2: hot-key split bound, limit L = 100, demand 3·L inside one window, 300 trials per row");
    println!("| parts S | isolates I | max admitted − L | max unused quota at first refusal | bound (S−1)·I | min admitted of 3·L |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let limit = 100u32;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for parts in [2u32, 4, 8, 16] {
        for isolates in [1usize, 2, 4, 8] {
            let policy = Policy {
                name: "sim".into(),
                limit,
                window_s: 60,
                key: KeySource::User,
                shards: 16,
                failure: FailureMode::Open,
                timeout_ms: 5_000,
                hot_keys: [("user:hot".to_owned(), parts)].into_iter().collect(),
                binding: "RATE_LIMITER".into(),
                check: false,
                shard_key: None,
            };
            let (mut worst_over, mut worst_unused, mut min_admitted) = (i64::MIN, 0u32, u32::MAX);
            for _ in 0..300 {
                let mut memories: Vec<IsolateMemory> = (0..isolates)
                    .map(|_| IsolateMemory::new(1_000, rng.next() as u32))
                    .collect();
                let mut objects: HashMap<String, MemoryStore> = HashMap::new();
                let (mut admitted, mut first_refusal_unused) = (0u32, None);
                for _ in 0..(3 * limit) {
                    let memory = &mut memories[(rng.next() % isolates as u64) as usize];
                    let now_ms = 0;
                    let allowed = match plan::plan(memory, &policy, "user:hot", now_ms) {
                        Plan::Refuse { .. } => false,
                        Plan::Ask {
                            object,
                            take,
                            memory_key,
                        } => {
                            let store = objects.entry(object).or_default();
                            let (reply, _) =
                                limiter::take(store, &take, now_ms).expect("valid request");
                            plan::remember_refusal(memory, &memory_key, &reply, now_ms);
                            reply.allowed
                        }
                    };
                    if allowed {
                        admitted += 1;
                    } else if first_refusal_unused.is_none() {
                        first_refusal_unused = Some(limit - admitted);
                    }
                }
                worst_over = worst_over.max(i64::from(admitted) - i64::from(limit));
                worst_unused = worst_unused.max(first_refusal_unused.unwrap_or(0));
                min_admitted = min_admitted.min(admitted);
            }
            let bound = (parts - 1) * isolates as u32;
            println!("| {parts} | {isolates} | {worst_over} | {worst_unused} | {bound} | {min_admitted} |");
            assert!(worst_over <= 0, "over-admission");
            assert!(
                worst_unused <= bound,
                "under-admission beyond the documented bound"
            );
        }
    }
}

fn main() {
    load_part();
    split_part();
}
