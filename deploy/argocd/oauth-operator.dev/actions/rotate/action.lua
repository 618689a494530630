-- Asks oauth-operator to rotate the client secret once: a new value of the rotate annotation.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["oauth-operator.dev/rotate"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
