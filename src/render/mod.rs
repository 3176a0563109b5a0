//! Edge-side rendering: pages streamed from the edge, assembled from fragments (KV, else the origin with
//! write-back), personalised per visitor (locale, currency, prices, A/B variant) and hinted (`Link` preloads).
//!
//! Pure modules: `html` (escaping newtype), `plan` (configuration: pages, slots, fragment TTLs/budgets/fallbacks),
//! `assemble` (document-order streaming and budgets over futures), `freshness` (how long an origin fragment may stay in
//! KV), `personal` (locale/country/currency/prices), `hints` (preloads), `variant` (flags and sticky A/B), `skips` (a
//! document's members that did not read), `templates`, `keys` (KV layout). Runtime: `handler`.

pub mod assemble;
pub mod freshness;
pub mod handler;
pub mod hints;
pub mod html;
pub mod keys;
pub mod personal;
pub mod plan;
pub mod skips;
pub mod templates;
pub mod variant;
