import ConduitKit
import ConduitWire
import Crypto
import NIOCore
import NIOWebSocket

/// One binary message's way from the socket to a handler (SPEC §1, §3): decode, digest check,
/// chunk queueing, relay, route lookup, handler call, reply.
extension SessionHandler {
    /// The size of message past which its headers are not kept for the next one to reuse.
    private static let keptHeaderBytes = 16 * 1024

    /// Resume's fields, made once (their names are packed for comparison).
    private static let positionFields = SetAsideNumbers(ResumeHeader.ack, ResumeHeader.position)

    func dispatch(_ frameData: ByteBuffer) {
        traffic.received(bytes: frameData.readableBytes)
        // A message that may carry large headers leaves none behind: the reused list held the
        // strings of the connection's last message (up to a megabyte) for as long as it idled.
        defer { if frameData.readableBytes > Self.keptHeaderBytes { decodedHeaders = Headers() } }
        let message: Message
        // On a resuming connection `ack` and `pos` are the connection's, not the message's.
        var positions = Self.positionFields
        let resume = attachedResume
        do {
            if resume != nil {
                message = try Message(decoding: frameData, reusing: &decodedHeaders, settingAside: &positions)
            } else {
                message = try Message(decoding: frameData, reusing: &decodedHeaders)
            }
        } catch {
            let readable = Message.readableHeaders(of: frameData)
            endRequest(refusing: InboundKind(readable, route: readable.route), correlation: readable.correlation)
            return replyError(ConduitError(converting: error), route: readable.route, correlation: readable.correlation)
        }
        let headers = message.headers
        let route = headers.route
        let kind = InboundKind(headers, route: route)
        if let resume {
            let admitted = resume._withUnsafeGuaranteedRef {
                admitResumed(to: $0, kind, route: route, headers: headers, ack: positions.firstValue, position: positions.secondValue)
            }
            switch admitted {
            case .consumed: return
            case .overflow: return close(code: .policyViolation, reason: "too many messages above an unfinished chunked request")
            case .dispatch: break
            }
        }
        switch kind {
        case .digest: return replyDigest(of: message.payload, correlation: headers.correlation)
        case .cancel(let token): return cancelRequest(token)
        case .acknowledgement: return
        case .chunk: return queueChunk(message.payload, bytes: frameData.readableBytes, route: route, correlation: headers.correlation)
        case .complete: break
        }
        if let refused = refusedRequest {
            refusedRequest = nil
            // Its client has its error: the end of the refused request is not dispatched.
            if refused.isSameRequest(headers.correlation) { return }
        }
        let payload: ByteBuffer
        do {
            payload = try assembler.complete(with: message.payload)
            syncChunkReservation()
        } catch {
            syncChunkReservation()
            return replyError(ConduitError(converting: error), route: route, correlation: headers.correlation)
        }
        guard let route else {
            return relay(Message(headers: headers, payload: payload))
        }
        guard let session else { return }
        // A request joined from chunks holds all of them (their queue's charge was given back).
        let requestBytes = frameData.readableBytes - message.payload.readableBytes + payload.readableBytes
        RouteInvocation.invoke(
            route: route, headers: headers, payload: payload, requestBytes: requestBytes,
            client: client, transport: .webSocket, eventLoop: session.channel.eventLoop,
            registry: services.registry, limits: requestLimits, destination: session, cancellations: cancellations)
    }

    /// `cancel: <token>` (SPEC §8): stops the request's work and answers it `CancelledError`,
    /// once; an unknown or finished token is ignored. Never queued, never dispatched. "That
    /// client's" request: one the id's earlier socket sent is cancelled from its next one, and
    /// answered here; an IPC request naming the id is answered to its caller, who waited for
    /// the reply timeout while this socket got the answer to a request it never sent.
    private func cancelRequest(_ token: String) {
        let found = cancellations.cancel(token).map { ($0, in: cancellations) } ?? services.directory.cancel(token, of: client, besides: cancellations)
        guard let (cancelled, registry) = found else { return }
        if let answer = registry.answersCancels { return answer(cancelled, token) }
        replyError(.cancelled("the request was cancelled by the client"), route: cancelled.route, correlation: (cancelled.correlation, token))
    }

    /// Queues a chunk, counting the whole message it came in (headers too) against the
    /// connection's chunk queue and the host's budget.
    private func queueChunk(_ payload: ByteBuffer, bytes: Int, route: String?, correlation: (name: String, value: String)?) {
        if let refused = refusedRequest {
            // A later part of the refused request goes with it; any other starts a new queue.
            guard !refused.isSameRequest(correlation) else { return }
            refusedRequest = nil
        }
        do {
            try assembler.append(payload, bytes: bytes)
        } catch {
            syncChunkReservation()
            return refuseChunk(ConduitError(converting: error), route: route, correlation: correlation)
        }
        guard syncChunkReservation() else {
            return refuseChunk(.payloadTooLarge("the host's buffer budget is exhausted; the queued chunks were dropped"), route: route, correlation: correlation)
        }
    }

    private func refuseChunk(_ error: ConduitError, route: String?, correlation: (name: String, value: String)?) {
        refusedRequest = RefusedRequest(correlation)
        replyError(error, route: route, correlation: correlation)
    }

    /// A message that could not be decoded ends its request (SPEC §3: drops are whole): the
    /// chunks queued before it go, and when it was a part naming its request, that request's
    /// later parts and its end go too. Else those completed a request of their own with a hole
    /// where the refused part was (its client answered twice: the error, then an echo without
    /// those bytes), and queued chunks were joined to the next request.
    private func endRequest(refusing kind: InboundKind, correlation: (name: String, value: String)?) {
        guard !kind.standsAlone else { return }
        assembler.reset()
        syncChunkReservation()
        refusedRequest = kind == .chunk ? RefusedRequest(correlation) : nil
    }

    /// Makes the bytes taken from the host's budget match the chunk queue's; when the budget
    /// can't cover a new chunk, the queue is emptied (false).
    @discardableResult
    func syncChunkReservation() -> Bool {
        // Nearly always nothing is queued: fetching the budget first cost a retain and a
        // release of two objects a message.
        if chunkReservation.bytes == assembler.queuedBytes { return true }
        let budget = services.directory.budget
        guard chunkReservation.match(assembler.queuedBytes, in: budget) else {
            budget.dropped(.hostBudget)
            assembler.reset()
            chunkReservation.releaseAll(in: budget)
            return false
        }
        return true
    }

    /// `to`: hands the message to another client with `from` added (SPEC §3); an id without a
    /// socket here goes to the cluster, when there is one (SPEC §10). One held here in its
    /// grace period may have moved to another host: answered here, it was not found there.
    /// (This host's own subscription for it answers "no socket", after the holder's answer.)
    private func relay(_ message: Message) {
        let correlation = message.headers.correlation
        guard let target = message.headers[HeaderName.to].flatMap(ClientID.init) else {
            return replyError(.badRequest("'to' is not a client id"), route: nil, correlation: correlation)
        }
        var relayed = message
        relayed.headers.replaceOrAppend(HeaderName.from, client.rawValue)
        guard services.directory.isConnected(target) else {
            guard let cluster = services.cluster, let session else {
                return replyError(.notFound("client '\(target)' has no open socket"), route: nil, correlation: correlation)
            }
            return ClusterRelay.start(
                relayed, to: target, through: cluster, answering: session, correlation: correlation,
                inFlight: requestLimits.inFlight, metrics: services.metrics)
        }
        // `delivered` means accepted into the recipient's queue (SPEC §3), so say when it wasn't.
        if case .dropped(let cause) = services.directory.push(relayed, to: target) {
            return replyError(.relayRefused(to: target, cause: cause.rawValue), route: nil, correlation: correlation)
        }
        if let correlation { send(ReplyBuilder.delivered(correlation)) }
    }

    /// `digest`: answers with the SHA-1 of the payload in uppercase hex (the runtime's self-check).
    private func replyDigest(of payload: ByteBuffer, correlation: (name: String, value: String)?) {
        let digest = payload.withUnsafeReadableBytes { Insecure.SHA1.hash(data: $0) }
        var headers: Headers = [HeaderName.digest: digest.map { hexDigits[Int($0)] }.joined()]
        if let correlation { headers.append(correlation.name, correlation.value) }
        send(Message(headers: headers))
    }

    func replyError(_ error: ConduitError, route: String?, correlation: (name: String, value: String)?) {
        services.metrics.errorReplied(type: error.kind.name)
        send(ReplyBuilder.message(for: .failure(error), route: route, correlation: correlation))
    }
}

private let hexDigits = (0...255).map { String(format: "%02X", $0) }

import Foundation
