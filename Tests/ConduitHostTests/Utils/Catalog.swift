import ConduitEcho
import ConduitHost
import ConduitKit

extension HandlerCatalog {
    /// The kinds the host tests use: echo plus the test handlers in this folder.
    static let hostTests = HandlerCatalog([
        HandlerKind(EchoHandler.self, name: "echo"),
        HandlerKind(PushingHandler.self, name: "pusher"),
        HandlerKind(ThrowingHandler.self, name: "thrower"),
        HandlerKind(SettingsHandler.self, name: "configured"),
        HandlerKind(DefaultedHandler.self, name: "defaulted"),
        HandlerKind(OutcomeHandler.self, name: "outcome"),
        HandlerKind(SlowHandler.self, name: "slow"),
        HandlerKind(WatchingHandler.self, name: "watcher"),
        HandlerKind(FarewellHandler.self, name: "farewell"),
        HandlerKind(AbandoningHandler.self, name: "abandoning"),
        HandlerKind(WaitingHandler.self, name: "waiting"),
        HandlerKind(PartedReplyHandler.self, name: "parted"),
    ])
}
