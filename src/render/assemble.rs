//! Page assembly over futures, independent of the runtime: the shell first, then every slot in document order as
//! soon as it and the slots before it are ready (all slots run concurrently), then the tail; and the time budget
//! that turns a failed or late fragment into its fallback. Timers and fetches are passed in. Pure.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::{self, Either};
use futures_util::stream::{self, Stream, StreamExt};

use super::html::Html;

/// Why a fragment's fallback was written instead of the fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    Failed(String),
    OverBudget,
}

/// The page as a stream of chunks: `shell`, each slot in order, `tail`. Slots are polled concurrently (up to all
/// at once) once the shell has been taken, so a slow slot delays only itself and what follows it.
pub fn page_stream<F>(shell: Html, slots: Vec<F>, tail: Html) -> impl Stream<Item = Html>
where
    F: Future<Output = Html>,
{
    let width = slots.len().max(1);
    stream::once(future::ready(shell))
        .chain(stream::iter(slots).buffered(width))
        .chain(stream::once(future::ready(tail)))
}

/// `stream`, calling `end(true)` once it has yielded its last item, or `end(false)` if it is dropped before (the
/// client went away, the runtime cancelled the body): how a streamed page learns when, and whether, it was sent whole.
pub fn on_end<S: Stream, F: FnOnce(bool) + Unpin>(stream: S, end: F) -> OnEnd<S, F> {
    OnEnd {
        stream: Box::pin(stream),
        end: Some(end),
    }
}

/// The stream [`on_end`] returns.
pub struct OnEnd<S, F: FnOnce(bool)> {
    stream: Pin<Box<S>>,
    end: Option<F>,
}

impl<S: Stream, F: FnOnce(bool) + Unpin> Stream for OnEnd<S, F> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        let next = this.stream.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            if let Some(end) = this.end.take() {
                end(true);
            }
        }
        next
    }
}

impl<S, F: FnOnce(bool)> Drop for OnEnd<S, F> {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            end(false);
        }
    }
}

/// Runs `fetch` against `timer`: the fragment if it succeeds first, otherwise `fallback` and why.
pub async fn within_budget<F, T>(fetch: F, timer: T, fallback: Html) -> (Html, Option<Miss>)
where
    F: Future<Output = Result<Html, String>>,
    T: Future<Output = ()>,
{
    let fetch = std::pin::pin!(fetch);
    let timer = std::pin::pin!(timer);
    match future::select(fetch, timer).await {
        Either::Left((Ok(html), _)) => (html, None),
        Either::Left((Err(reason), _)) => (fallback, Some(Miss::Failed(reason))),
        Either::Right(((), _)) => (fallback, Some(Miss::OverBudget)),
    }
}

#[cfg(test)]
mod tests {
    use futures_channel::oneshot;
    use futures_util::FutureExt;

    use super::*;

    fn lit(s: &'static str) -> Html {
        let mut h = Html::new();
        h.push_lit(s);
        h
    }

    /// Takes every chunk that is ready now, without waiting.
    fn ready_now<S: Stream<Item = Html> + Unpin>(s: &mut S) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Some(chunk)) = s.next().now_or_never() {
            out.push(chunk.into_string());
        }
        out
    }

    #[test]
    fn slots_are_written_in_document_order_as_soon_as_their_predecessors_are_ready() {
        let (tx, rx): (Vec<_>, Vec<_>) = (0..3).map(|_| oneshot::channel::<Html>()).unzip();
        let slots = rx
            .into_iter()
            .map(|r| r.map(|v| v.unwrap_or_default()))
            .collect();
        let mut page = Box::pin(page_stream(lit("shell"), slots, lit("tail")));
        let mut tx = tx.into_iter().map(Some).collect::<Vec<_>>();
        let mut send = |i: usize, s: &'static str| {
            tx[i]
                .take()
                .expect("once")
                .send(lit(s))
                .expect("receiver alive");
        };

        assert_eq!(ready_now(&mut page), ["shell"], "the shell needs no slot");
        send(2, "c");
        assert_eq!(
            ready_now(&mut page),
            Vec::<String>::new(),
            "c waits for a and b"
        );
        send(0, "a");
        assert_eq!(ready_now(&mut page), ["a"], "a is written, b still pending");
        send(1, "b");
        assert_eq!(
            ready_now(&mut page),
            ["b", "c", "tail"],
            "b releases c, then the tail"
        );
        assert!(page.next().now_or_never().expect("ended").is_none());
    }

    #[test]
    fn the_end_of_a_stream_is_reported_once_and_whether_it_completed() {
        use std::cell::RefCell;
        use std::rc::Rc;
        let ends = Rc::new(RefCell::new(Vec::new()));
        let record = |ends: &Rc<RefCell<Vec<bool>>>| {
            let ends = ends.clone();
            move |completed| ends.borrow_mut().push(completed)
        };
        let mut whole = on_end(stream::iter(["a", "b"]), record(&ends));
        assert_eq!(whole.next().now_or_never(), Some(Some("a")));
        assert_eq!(whole.next().now_or_never(), Some(Some("b")));
        assert!(ends.borrow().is_empty(), "not ended while items remain");
        assert_eq!(whole.next().now_or_never(), Some(None));
        assert_eq!(whole.next().now_or_never(), Some(None));
        drop(whole);
        assert_eq!(*ends.borrow(), [true], "completed, reported once");

        let mut cut = on_end(stream::iter(["a", "b"]), record(&ends));
        assert_eq!(cut.next().now_or_never(), Some(Some("a")));
        drop(cut);
        assert_eq!(
            *ends.borrow(),
            [true, false],
            "dropped mid-way: not completed"
        );
    }

    #[test]
    fn a_page_without_slots_is_shell_then_tail() {
        let mut page = Box::pin(page_stream(
            lit("s"),
            Vec::<future::Ready<Html>>::new(),
            lit("t"),
        ));
        assert_eq!(ready_now(&mut page), ["s", "t"]);
    }

    #[test]
    fn the_budget_picks_the_fragment_the_fallback_on_failure_or_the_fallback_when_late() {
        let run = |fetch: Option<Result<Html, String>>, timer_fired: bool| {
            let fetch = match fetch {
                Some(r) => Either::Left(future::ready(r)),
                None => Either::Right(future::pending()),
            };
            let timer = if timer_fired {
                Either::Left(future::ready(()))
            } else {
                Either::Right(future::pending())
            };
            within_budget(fetch, timer, lit("fallback"))
                .now_or_never()
                .map(|(h, miss)| (h.into_string(), miss))
        };
        assert_eq!(
            run(Some(Ok(lit("frag"))), false),
            Some(("frag".into(), None))
        );
        assert_eq!(
            run(Some(Err("500".into())), false),
            Some(("fallback".into(), Some(Miss::Failed("500".into()))))
        );
        assert_eq!(
            run(None, true),
            Some(("fallback".into(), Some(Miss::OverBudget)))
        );
        assert_eq!(run(None, false), None, "neither ready: still waiting");
    }
}
