namespace EdgeKube.Master.Api.Selectors;

/// <summary>
/// A label or field selector that does not parse or validate. <see cref="Exception.Message"/> is the text
/// kube-apiserver puts in its 400 BadRequest Status, so the handler can return it unchanged.
/// </summary>
public sealed class SelectorException(string message) : Exception(message);
