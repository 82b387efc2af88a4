"""Protocol connectors (MQTT, OPC UA, Modbus TCP), each a ``Source`` of reading batches."""
