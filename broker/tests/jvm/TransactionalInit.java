// A transactional producer's initTransactions() as the Java client reports it (run by
// broker/tests/admin_apis.rs with Kafka 4.4's kafka-clients on the class path). Prints
// "ok" or the exception's class and message, and how many milliseconds it took, so the
// test can tell a clean, fatal refusal from retries until max.block.ms.

import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;

public class TransactionalInit {
    public static void main(String[] args) {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("transactional.id", args[1]);
        props.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        props.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        props.put("max.block.ms", "30000");
        long start = System.nanoTime();
        String outcome;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            outcome = "ok";
        } catch (RuntimeException e) {
            outcome = e.getClass().getSimpleName() + ": " + e.getMessage();
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        System.out.println("outcome " + outcome);
        System.out.println("elapsed_ms " + ms);
    }
}
