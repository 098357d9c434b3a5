/// The text the built-in generator learns its word chain from: plain prose written for this
/// module, varied enough that every prompt seeds a different, readable answer.
enum BuiltinCorpus {
    static let text = """
        A good stream starts small and keeps its promises. The first token leaves the host \
        before the last one is known, and the reader sees the answer grow word by word. \
        When the socket closes for a moment, nothing is lost: the host keeps every message \
        for the client in a buffer and hands it over in order when the same id comes back. \
        The river does the same thing with the rain. It gathers what falls on the hills, \
        carries it past the town at its own pace, and never asks whether anyone is watching \
        from the bridge. A patient reader learns to trust the river and the stream alike. \
        Every message carries a token, and the token tells the reader which question the \
        answer belongs to. A reader may ask many questions at once; the answers arrive side \
        by side, each one marked with its own token, and none of them waits for the others. \
        When the reader has heard enough, it sends an abort, and the stream stops at once \
        with a short final message that says the answer is complete. Small tools that do \
        one thing well are easy to test and easy to trust. They wake when a message comes, \
        do their work without blocking anyone, and go back to sleep. The best of them say \
        clearly what went wrong when something does: a closed port, a model that never \
        answered, a line that made no sense. A clear error is a kindness to the person who \
        reads it late at night. The garden behind the old station grows quietly through the \
        summer. Tomatoes climb the fence, the beans find the sun, and the gardener writes down \
        what worked this year so that next year starts a little wiser. Writing things down is \
        how a small team remembers. Notes, tests and short comments carry the reasons from one \
        week to the next, and the code stays simple because nobody has to guess. A fast path \
        is worth measuring before it is worth changing. Count the messages, watch the clock, \
        and let the numbers decide which part of the work deserves attention. Then the host \
        can carry many thousands of tokens every second while the reader simply watches the \
        words appear, one after another, like lights coming on along a quiet street at dusk.
        """
}
