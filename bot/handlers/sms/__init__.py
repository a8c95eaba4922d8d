"""SMS through Tencent Cloud SMS: the transport and the reply (上行) callback."""
