namespace EdgeKube.Master.Api.Tables;

/// <summary>
/// Table options the API server rejects (an unknown includeObject). <see cref="Exception.Message"/> is
/// kube-apiserver's 400 BadRequest text.
/// </summary>
public sealed class TableOptionsException(string message) : Exception(message);
