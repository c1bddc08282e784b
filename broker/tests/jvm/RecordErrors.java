// KIP-467 as the Java client sees it (run by broker/tests/admin_apis.rs with Kafka 4.4's
// kafka-clients on the class path): one batch of four records, two of them keyless, to a
// compacted topic. Prints one line per record: "ok" or the exception's class and message.
// On Apache Kafka 4.4 the keyless records get InvalidRecordException and the keyed ones a
// KafkaException saying their batch held invalid records.

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;

public class RecordErrors {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        Properties adminProps = new Properties();
        adminProps.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(adminProps)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1)
                    .configs(Map.of("cleanup.policy", "compact")))).all().get();
        }
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        props.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        // Long enough for the four sends to share one batch; flush() sends it at once.
        props.put("linger.ms", "60000");
        props.put("enable.idempotence", "false");
        props.put("acks", "1");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            String[] keys = {"a", null, "b", null};
            for (String key : keys) {
                sent.add(producer.send(new ProducerRecord<>(topic, 0, key, "v")));
            }
            producer.flush();
            for (int i = 0; i < sent.size(); i++) {
                try {
                    sent.get(i).get();
                    System.out.println(i + " ok");
                } catch (ExecutionException e) {
                    System.out.println(i + " " + e.getCause().getClass().getSimpleName() + ": "
                            + e.getCause().getMessage());
                }
            }
        }
    }
}
