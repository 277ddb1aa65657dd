namespace EdgeKube.Agent.Cri;

/// <summary>The CRI version handshake failed; the message is one line saying what to do.</summary>
/// <param name="retriable">True when waiting may help (socket missing, nothing listening), false when it cannot (no CRI v1).</param>
public sealed class CriHandshakeException(string message, bool retriable, Exception? inner = null) : Exception(message, inner)
{
    public bool Retriable { get; } = retriable;
}
