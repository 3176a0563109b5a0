//! The deliberate panic every Durable Object class has, for the tests of what an object's panic does (its caller
//! answered, the panic logged, the object's next request served). The Worker sends [`PATH`] to an object only from
//! `/__debug/panic?in=…`, a `DEBUG_ROUTES` route, and an object panics only when the request it serves says, itself,
//! that the Worker which sent it has `DEBUG_ROUTES` on: no other route of the Worker, nor one added later, nor a
//! production Worker (where `DEBUG_ROUTES` is refused), can make an object panic by sending the path. Pure: each
//! object passes in what its request carries.

/// The object path of the deliberate panic (`POST`).
pub const PATH: &str = "/__debug/panic";
/// The header with which a Worker whose `DEBUG_ROUTES` is on says so on its debug panic request to an object of
/// any class.
pub const HEADER: &str = "x-edgekit-debug-routes";
/// [`HEADER`]'s value when `DEBUG_ROUTES` is on; any other value, or none, is off.
pub const ON: &str = "on";

/// Whether a [`HEADER`] value says the Worker's debug routes are on.
pub fn header_on(value: Option<&str>) -> bool {
    value == Some(ON)
}

/// Panics when this request (`POST` or not, its path) is the deliberate panic and `debug_routes` (asked only then)
/// says its sender may ask for it; returns otherwise, and the object answers the request as it would any other (the
/// path is an unknown one to it: 404). The message names `object` and the Worker's `x-request-id`; the panic's
/// location is the caller's (`#[track_caller]`), so the panic line names the object's own source file. Every
/// argument but the path is read only for the debug path: an object's other requests (a limiter's takes) cross to
/// the runtime for no header they would not read anyway.
#[track_caller]
pub fn panic_if_asked(
    is_post: bool,
    path: &str,
    debug_routes: impl FnOnce() -> bool,
    object: impl FnOnce() -> String,
    request_id: impl FnOnce() -> Option<String>,
) {
    if is_post && path == PATH && debug_routes() {
        panic_now(&object(), request_id())
    }
}

/// The panic, one copy for every object class: inside the generic gate above, each of the gate's instances (one per
/// object, for its closures) carried its own formatting of it (159 bytes more gzip for the three). `#[track_caller]`
/// passes on the location [`panic_if_asked`] was given: the object's own line.
#[cold]
#[inline(never)]
#[track_caller]
fn panic_now(object: &str, request_id: Option<String>) -> ! {
    panic!(
        "deliberate panic in {} (request {:?})",
        object,
        request_id.unwrap_or_default()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(is_post: bool, path: &str, on: bool) -> Option<String> {
        std::panic::catch_unwind(|| {
            panic_if_asked(
                is_post,
                path,
                || on,
                || "room \"r\"".into(),
                || Some("id-1".into()),
            )
        })
        .err()
        .map(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default()
        })
    }

    #[test]
    fn only_a_post_to_the_path_from_a_debug_worker_panics() {
        assert_eq!(
            outcome(true, PATH, true).as_deref(),
            Some("deliberate panic in room \"r\" (request \"id-1\")")
        );
        for (what, is_post, path, on) in [
            ("debug routes off", true, PATH, false),
            ("a GET", false, PATH, true),
            ("another path", true, "/take", true),
            (
                "a path that only starts like it",
                true,
                "/__debug/panic/x",
                true,
            ),
        ] {
            assert_eq!(outcome(is_post, path, on), None, "{what}");
        }
    }

    #[test]
    fn the_flag_and_the_request_id_are_read_only_for_the_debug_path() {
        let asked = std::cell::Cell::new(0);
        let read = || asked.set(asked.get() + 1);
        panic_if_asked(
            true,
            "/take",
            || {
                read();
                true
            },
            || {
                read();
                String::new()
            },
            || {
                read();
                None
            },
        );
        assert_eq!(asked.get(), 0, "no other request pays for reading them");
    }

    #[test]
    fn only_the_exact_value_turns_the_header_on() {
        assert!(header_on(Some(ON)));
        for value in [None, Some(""), Some("true"), Some("ON"), Some("1")] {
            assert!(!header_on(value), "{value:?}");
        }
    }
}
